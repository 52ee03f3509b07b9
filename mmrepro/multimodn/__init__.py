"""MultiModN (Swamy et al., NeurIPS 2023): sequential modular multimodal multi-task networks,
the P-Fusion and transformer baselines, interpretability scores, training helpers (one run, or
many runs as one stacked model) and the Appendix B modularity."""
from .batched import StackedMultiModN, fit_many
from .features import Standardizer
from .heads import TaskSpec
from .interpret import CumulativeTrajectory, cumulative_probabilities, importance_scores
from .model import MultiModN, MultiModNOutput, output_loss, state_change
from .modularity import modularity_networkx, modularity_score, module_graph, paper_modularity
from .pfusion import PFusion
from .train import FitResult, evaluation_pairs, fit, selection_score
from .transformer import FusionTransformer, TransformerSetting

__all__ = ["MultiModN", "MultiModNOutput", "output_loss", "state_change", "PFusion", "FusionTransformer",
           "TransformerSetting", "Standardizer", "TaskSpec",
           "importance_scores", "cumulative_probabilities", "CumulativeTrajectory",
           "fit", "fit_many", "StackedMultiModN", "FitResult", "evaluation_pairs", "selection_score",
           "modularity_score", "modularity_networkx", "module_graph", "paper_modularity"]
