"""`seatflow replay`: rebuild the read models from the topics into a shadow copy, swap.

    plan.py      what to read: source topic-partitions and offset ranges (`--from`, `--to`)
    source.py    reading offset ranges of the source topics (aiokafka, manual assignment)
    fold.py      records -> facts -> the seat state machine, one batch at a time (pure)
    shadow.py    the shadow copy: schema, sinks, recorded batches, the changelog it writes
    indexes.py   the shadow's secondary indexes, built once its tables are filled
    decoders.py  the decoding processes; spool.py: the files their chunks come back in
    swap.py      fence the live generation, hand over, swap atomically; abort; drop-old
    runner.py    the whole run, resumable
    progress.py  progress on a terminal, as plain lines, or as JSON

The replay shares the pure projection (`workers.projection`) and the sinks with the live
worker but not Faust: it is batch work (see README "Operations > Replay").
"""
