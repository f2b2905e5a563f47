"""cervseg.train"""
