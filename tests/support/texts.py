"""The texts the tests feed to models, each written once (test modules import them under their own short names).

Three vocabularies: the bundled IOI model's English (``tiny-ioi-gpt2``), the bundled translation model's
synthetic language (``tiny-synth-translate``), and the word-level vocabulary of the random-initialised models
(``tests.support.random_models.VOCAB``: lower case, words separated by spaces, punctuation as words).
"""

#: The bundled IOI model's prompt (it answers " Mary") and its counterfactual (the subject's name swapped).
IOI_PROMPT = "When Mary and John went to the store, John gave a drink to"
IOI_COUNTERFACTUAL = "When Mary and John went to the store, Mary gave a drink to"

#: Sentence pairs of the bundled translation model's synthetic language (source, its translation).
TRANSLATION_OLD_CAT = ("the old cat sees a bird quickly", "ka miru vesa mi avi rapide vidas")
TRANSLATION_TIRED_FRIEND = ("the tired friend greets this woman today", "ka amiko lasu tesu fema hodie salas")

#: The random models' IOI-shaped prompt (14 tokens) and a source with its target (9 tokens with ``</s>``).
RANDOM_PROMPT = "when mary and john went to the store , john gave a drink to"
RANDOM_SOURCE = "the small cat sees the red house ."
RANDOM_TARGET = "die klein katze sieht das rot haus ."
#: Their counterfactuals: the same lengths, other words (for patching and mean ablation).
RANDOM_COUNTERFACTUAL_PROMPT = "when john and mary went to the house , mary gave a book to"
RANDOM_COUNTERFACTUAL_SOURCE = "the big dog sees the blue house ."
RANDOM_COUNTERFACTUAL_TARGET = "die groß hund sieht das blau haus ."

#: Short random-model texts for methods that run many passes: a prompt and its continuation, a source and
#: the start of its translation.
SHORT_PROMPT = "when mary and john went"
SHORT_CONTINUATION = "to the store"
SHORT_SOURCE = "the cat sees the dog"
SHORT_TRANSLATION = "die katze sieht"

#: A random-model prompt and a forced target (the models placed by accelerate are run on these).
RANDOM_TEXT = "when mary and john went to the store"
RANDOM_TEXT_TARGET = "john gave a drink to mary"
