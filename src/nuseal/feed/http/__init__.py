"""The feed over HTTP: the ASGI application and its routes, the web pages and account routes, the security
headers, the uvicorn protocol with its head limits, and TLS."""
