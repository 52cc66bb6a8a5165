"""flowscope.dashboard"""
