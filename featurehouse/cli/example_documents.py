"""The example repo's document corpus and its embedding, which needs no model download.

About 200 short texts on eight topics, in English and Portuguese, with a title and a
language; some are revised later (same document, newer event time) and a few deleted (a
row with no embedding). The embedding is a hashed bag of words: each lowercased word is
hashed (BLAKE2b) to one of ``DIMENSIONS`` coordinates and a sign, counts are summed and the
vector is L2-normalised. It is deterministic and runs anywhere, so the quickstart's search
returns neighbours that share words with the query, which is all it is meant to show; a
real repo computes embeddings with a model in its pipeline and declares them the same way.

``embed_text`` is what a caller uses to turn a query into a vector for
``retrieve_online_documents`` or ``get_historical_documents`` over the example.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from datetime import datetime, timedelta

DIMENSIONS = 64
# words every text shares say nothing about its topic: left out of the embedding
STOP_WORDS = frozenset(
    "a an and are as at be by for from how in is it of on or the to with what why "
    "o a os as e de do da dos das em no na um uma para com por que como".split()
)
_WORD = re.compile(r"[^\W\d_]+")

# topic -> (English words, Portuguese words); texts draw their words from their topic's list
TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "cooking": (
        "recipe oven bake flour butter sauce garlic onion simmer roast dough pasta soup spices kitchen".split(),
        "receita forno assar farinha manteiga molho alho cebola massa sopa cozinha tempero".split(),
    ),
    "football": (
        "football goal striker match league referee penalty midfield coach stadium season keeper".split(),
        "futebol gol atacante partida campeonato juiz penalti treinador estadio goleiro torcida".split(),
    ),
    "astronomy": (
        "telescope galaxy planet orbit star nebula comet moon eclipse astronomer cosmos gravity".split(),
        "telescopio galaxia planeta orbita estrela nebulosa cometa lua eclipse astronomo cosmos".split(),
    ),
    "programming": (
        "python code compiler function variable bug debugger library database query api software".split(),
        "codigo compilador funcao variavel erro depurador biblioteca banco consulta programa software".split(),
    ),
    "gardening": (
        "garden soil seeds compost tomato prune roses watering weeds greenhouse mulch bloom".split(),
        "jardim solo sementes composto tomate poda rosas rega ervas estufa flores adubo".split(),
    ),
    "music": (
        "guitar piano melody chord rhythm concert band singer album drums orchestra song".split(),
        "violao piano melodia acorde ritmo show banda cantora disco bateria orquestra musica".split(),
    ),
    "finance": (
        "stocks bonds interest inflation budget savings portfolio dividend loan mortgage bank market".split(),
        "acoes titulos juros inflacao orcamento poupanca carteira dividendo emprestimo banco mercado".split(),
    ),
    "travel": (
        "flight passport hotel beach itinerary luggage museum train tourist map island backpack".split(),
        "voo passaporte hotel praia roteiro bagagem museu trem turista mapa ilha mochila".split(),
    ),
}
PER_TOPIC = 25  # 8 topics x 25 = 200 documents
PORTUGUESE_SHARE = 0.2


def embed_text(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """The example's embedding of ``text``: signed feature hashing of its lowercased words, L2-normalised.

    A text with no words (or only stop words) gives the zero vector.
    """
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        if word in STOP_WORDS:
            continue
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[digest % dimensions] += 1.0 if (digest >> 32) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


def _sentence(rng: random.Random, words: list[str], lang: str) -> str:
    chosen = rng.sample(words, 6)
    joiner = " e " if lang == "pt" else " and "
    return f"{chosen[0].capitalize()} {chosen[1]} {chosen[2]}{joiner}{chosen[3]}, {chosen[4]} {chosen[5]}."


def corpus_rows(rng: random.Random, start: datetime, now: datetime) -> list[list[object]]:
    """The corpus as CSV rows: doc_id, event_timestamp, created, topic, lang, title, text, embedding_text.

    ``embedding_text`` is the vector's numbers separated by spaces (a CSV seed holds no arrays;
    the dbt model models/example/documents_embedded.sql splits it into one); an empty one (a
    NULL vector) deletes the document from then on.
    """
    rows: list[list[object]] = []
    doc_id = 1
    span = int((now - start).total_seconds())
    for topic, (english, portuguese) in TOPICS.items():
        for _ in range(PER_TOPIC):
            lang = "pt" if rng.random() < PORTUGUESE_SHARE else "en"
            words = portuguese if lang == "pt" else english
            title = f"{topic.capitalize()}: {' '.join(rng.sample(words, 2))}"
            moment = start + timedelta(seconds=rng.randint(0, span // 2))
            versions = [(moment, _sentence(rng, words, lang))]
            roll = rng.random()
            if roll < 0.15:  # revised later: a new text, the same document
                versions.append((moment + timedelta(seconds=rng.randint(3600, span // 2)), _sentence(rng, words, lang)))
            elif roll < 0.18:  # withdrawn: no embedding from then on
                versions.append((moment + timedelta(seconds=rng.randint(3600, span // 2)), ""))
            for event, text in versions:
                vector = " ".join(f"{v:.6g}" for v in embed_text(text)) if text else ""
                created = event + timedelta(minutes=rng.randint(1, 10))
                rows.append([doc_id, _fmt(event), _fmt(created), topic, lang, title, text, vector])
            doc_id += 1
    return rows


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


HEADER = ["doc_id", "event_timestamp", "created", "topic", "lang", "title", "text", "embedding_text"]
