"""flowscope.reference_app"""
