"""Mishards discovery: the live list of Milvus instances, their role and health.

A pluggable back end (`mishards.discovery.backends`) says which instances exist; the
prober (`mishards.discovery.prober`) checks their health and keeps the versioned
membership that the gRPC servicer (`mishards.discovery.servicer`) serves and streams.
"""
