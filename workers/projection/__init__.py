"""Pure projections: (state, event) -> (new state, read-model mutations). No I/O, no Faust."""
