"""Documents to a searchable index: loaders, chunking, embeddings, FAISS + BM25 storage, hybrid retrieval."""
