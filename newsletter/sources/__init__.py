"""Paper sources: fetching a feed (`fetch`), parsing it (one class per format, found by
name in `registry`), and the records they produce (`records`). Importing this package
loads no parser, so the commands that only read stored papers stay light."""
