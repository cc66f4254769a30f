"""Post-deploy checks that run against a live service over HTTP."""
