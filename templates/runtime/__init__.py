"""Code that runs on AWS, not at build time: shipped inline (user data, Lambda ZipFile) by the builders.

The builders read these files as text; nothing here is imported while a template is built, so the
purity wall (no SDK, network or clock in builders) does not apply to this folder.
"""
