"""Prompt templates of the narrator (Markdown files, `string.Template` placeholders)."""
