"""Pictures and videos: a decoder process that reads them (decode.py) and a bounded pool
of such processes (pool.py). Nothing here knows of users, files or HTTP."""
