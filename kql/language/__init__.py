"""The language: text → syntax tree with spans, and back (formatter, JSON form, decompiler),
errors with carets, and completion. Knows the registry's names, never HTTP."""
