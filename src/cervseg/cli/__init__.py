"""cervseg.cli"""
