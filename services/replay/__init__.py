"""`roadwatch replay`: a video file through the services' detect and track code, without the bus."""
