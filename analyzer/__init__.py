"""flowscope.analyzer"""
