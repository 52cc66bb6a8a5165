"""flowscope.collector"""
