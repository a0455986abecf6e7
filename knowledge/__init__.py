"""The knowledge base (知识库): reviewed answers seats give callers directly, searchable in Chinese."""
