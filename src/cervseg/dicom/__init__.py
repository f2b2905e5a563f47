"""cervseg.dicom"""
