"""Reports: figures and files for one run (plots) and, later, tables over many runs."""
