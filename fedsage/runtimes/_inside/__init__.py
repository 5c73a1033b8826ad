"""Code that runs inside a runtime's interpreter: standard library only, Python 3.7 syntax."""
