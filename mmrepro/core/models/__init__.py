"""Encoders, joint-fusion networks (MIND, MILES, MedFuse), teacher ensembles and UME."""
from mmrepro.core.models.encoders import RESNET_STAGES, LSTMEncoder, MLPEncoder, ResNetEncoder
from mmrepro.core.models.ensemble import ensemble_probs, soft_targets, ume_proba
from mmrepro.core.models.fusion import FUSION_HEAD, ModelOutput, MultimodalNet, count_parameters, probabilities

__all__ = ["RESNET_STAGES", "ResNetEncoder", "LSTMEncoder", "MLPEncoder", "MultimodalNet", "ModelOutput",
           "FUSION_HEAD", "count_parameters", "probabilities", "ensemble_probs", "soft_targets",
           "ume_proba"]
