"""cervseg.study: architecture x loss x seed studies over one cache, and their report."""
