"""Protocol-faithful local doubles of the providers' clouds, served over HTTPS with a test CA."""
