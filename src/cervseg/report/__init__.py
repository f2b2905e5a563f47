"""cervseg.report"""
