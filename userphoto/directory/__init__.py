"""LDAP / Active Directory integration: read users and thumbnailPhoto, delta/watch, write-back.

An adapter: it depends on the core (model, imaging) and the store, never the other way round.
"""
