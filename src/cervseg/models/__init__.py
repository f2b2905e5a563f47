"""cervseg.models"""
