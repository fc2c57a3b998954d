"""The home call device protocol (version 1) and a reference device client."""
