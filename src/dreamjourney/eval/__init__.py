"""Metrics (PSNR, SSIM, LPIPS, reprojection consistency, flicker) and the novel-view benchmark."""
