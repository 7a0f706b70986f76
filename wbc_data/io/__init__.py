"""Plumbing without domain knowledge: atomic writes, YAML, bundled resources, path names, the directory walk,
worker pools, workspace locks and the pixel loader that opens any manifest row. Imports nothing from the stages
or the CLI."""
