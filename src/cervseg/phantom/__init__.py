"""cervseg.phantom"""
