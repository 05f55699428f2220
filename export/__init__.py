"""skyvoice build stage (workstation): the only package that imports torch."""
