"""preference_methods"""
