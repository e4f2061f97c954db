"""The roadwatch event contract: subjects, streams and the versioned message Structs.

Everything a subscriber needs to read roadwatch's events lives here; the JSON Schemas and the
AsyncAPI document under proto/ are generated from it (`make proto`).
"""
