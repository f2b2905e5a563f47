"""cervseg.data"""
