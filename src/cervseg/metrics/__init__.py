"""cervseg.metrics"""
