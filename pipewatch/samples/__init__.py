"""Sample data written into real databases: ProfileMesh profiling runs and change-feed traffic."""
