"""The science shared by two or more papers: data, models (plain and stacked over runs), losses, the
balancing methods MILES is compared with, the trainer, optimisers, metrics and interval statistics."""
