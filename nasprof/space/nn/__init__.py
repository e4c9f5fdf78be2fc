"""torch modules for the block families (imported only by ``BlockSpec.build`` and the exporter)."""
