"""MultiModN (Swamy et al., NeurIPS 2023): sequential modular multimodal multi-task networks,
the P-Fusion and transformer baselines, interpretability scores, training helpers (one run, or
many runs as one stacked model) and the Appendix B modularity."""
from mmrepro.papers.multimodn.batched import StackedMultiModN, fit_many_multimodn
from mmrepro.papers.multimodn.features import Standardizer
from mmrepro.papers.multimodn.heads import TaskSpec
from mmrepro.papers.multimodn.interpret import CumulativeTrajectory, cumulative_probabilities, importance_scores
from mmrepro.papers.multimodn.model import MultiModN, MultiModNOutput, output_loss, state_change
from mmrepro.papers.multimodn.modularity import modularity_networkx, modularity_score, module_graph, paper_modularity
from mmrepro.papers.multimodn.pfusion import PFusion
from mmrepro.papers.multimodn.train import MultiModNFit, evaluation_pairs, fit_multimodn, selection_score
from mmrepro.papers.multimodn.transformer import FusionTransformer, TransformerSetting

__all__ = ["MultiModN", "MultiModNOutput", "output_loss", "state_change", "PFusion", "FusionTransformer",
           "TransformerSetting", "Standardizer", "TaskSpec",
           "importance_scores", "cumulative_probabilities", "CumulativeTrajectory",
           "fit_multimodn", "fit_many_multimodn", "StackedMultiModN", "MultiModNFit", "evaluation_pairs", "selection_score",
           "modularity_score", "modularity_networkx", "module_graph", "paper_modularity"]
