"""The baseline a user writes in twenty lines: FastAPI around a transformers pipeline.

Run: uvicorn --app-dir bench naive_app:app --port 8001, with NAIVE_MODEL=<classifier folder>.
"""

import os

from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

classifier = pipeline("text-classification", model=os.environ["NAIVE_MODEL"], device="cpu")
app = FastAPI()


class Request(BaseModel):
    text: str


@app.post("/predict")
def predict(request: Request) -> dict:
    result = classifier(request.text)[0]
    return {"label": result["label"], "score": result["score"]}
