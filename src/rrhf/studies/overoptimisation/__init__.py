"""overoptimisation"""
