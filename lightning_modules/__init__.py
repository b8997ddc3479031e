"""Pure ``nn.Module`` architectures (:mod:`~lightning_modules.lsn` LightSeizureNet,
:mod:`~lightning_modules.szloc` SZLoc), kept apart from the LightningModules that train them
(:mod:`~lightning_modules.detection`, :mod:`~lightning_modules.localization`), their losses from
inexact labels, and model cost (:mod:`~lightning_modules.cost`)."""
