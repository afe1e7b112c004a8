"""The `Transformer` a `ModelConfig` (`seq2seq.config`) describes."""

from seq2seq.models.transformer import Transformer

# ModelConfig fields that override the named size's value when set.
SIZE_OVERRIDES = ("num_encoder_layers", "num_decoder_layers", "hidden_dim", "num_heads",
                  "intermediate_dim")


def build_model(model_config, source_vocabulary_size, target_vocabulary_size):
    """A new (unbuilt) `Transformer` for `model_config` and the tokenizers' vocabulary sizes."""
    options = {name: getattr(model_config, name) for name in SIZE_OVERRIDES
               if getattr(model_config, name) is not None}
    return Transformer.from_size(
        model_config.size,
        source_vocabulary_size=source_vocabulary_size,
        target_vocabulary_size=target_vocabulary_size,
        dropout=model_config.dropout,
        attention_dropout=model_config.attention_dropout,
        activation_dropout=model_config.activation_dropout,
        activation=model_config.activation,
        norm_first=model_config.norm_first,
        position_embedding=model_config.position_embedding,
        max_length=model_config.max_length,
        share_embeddings=model_config.share_embeddings,
        tie_output=model_config.tie_output,
        scale_embeddings=model_config.scale_embeddings,
        output_bias=model_config.output_bias,
        **options,
    )
