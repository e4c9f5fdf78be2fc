"""Test helpers that ship with nasprof: a fake adb server (``nasprof.testing.fake_adb``) and friends.

Nothing here is imported by the library itself.
"""
