"""Everything with side effects: outputs, the store, the span archive, the Brain, the Fixer and Memory."""
