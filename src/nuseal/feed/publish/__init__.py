"""The way in: the streamed upload, the push pipeline of stages, and the publisher (:class:`FeedService`:
publish, unlist/relist, recover, rebuild, reads)."""
