"""cervseg.infer"""
