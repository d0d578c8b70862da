"""Generation backends (llama.cpp, transformers) behind one small interface."""
