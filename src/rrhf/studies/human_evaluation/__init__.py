"""human_evaluation"""
