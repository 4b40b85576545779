"""The project as a whole: the layers, the example project, the demo, the docs' snippets."""
