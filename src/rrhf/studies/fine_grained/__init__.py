"""fine_grained"""
