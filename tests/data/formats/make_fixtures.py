"""Regenerate the small fixture files in this folder (needs the `test` extra: reportlab, pypdf, python-docx).

    python tests/data/formats/make_fixtures.py

Tests import the texts below (PDF_PAGES, DOCX_*) to check what the loaders return.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Three pages, each longer than the chunker's minimum (150 chars), so that every passage stays on one page.
PDF_PAGES = [
    [
        "臺南市立圖書館新總館於二〇二五年三月一日正式開館，",
        "新總館位於永康區，樓地板面積約兩萬八千平方公尺。",
        "館藏超過一百萬冊，其中包括大量臺灣文學與地方文獻。",
        "開館當天舉辦了閱讀節活動，吸引三萬名市民參加。",
        "市長表示，新總館將成為南部最重要的公共知識中心。",
        "館方也規劃了兒童閱讀區、自習室與數位創作空間。",
        "平日開放時間為上午八點半至晚上九點，週一休館。",
        "讀者可以使用市民卡借書，每人最多借閱二十冊。",
    ],
    [
        "高雄港今年貨櫃吞吐量創下歷史新高，",
        "港務公司表示全年達到一千萬標準箱，較去年成長百分之八。",
        "第七貨櫃中心啟用後，大型貨櫃輪的靠港次數明顯增加。",
        "港區也導入智慧調度系統，平均等候時間縮短了一半。",
        "業者認為，東南亞航線需求強勁是成長的主要原因。",
        "港務公司預計明年將再擴建兩座自動化碼頭。",
        "環保團體則提醒，港區空氣品質仍需持續改善。",
        "市府承諾增設岸電設施，減少船舶停泊時的排放。",
    ],
    [
        "阿里山森林鐵路在停駛多年後全線恢復通車，",
        "從嘉義站到阿里山站全程約需兩小時三十分鐘。",
        "林業及自然保育署表示，沿線已完成邊坡整治與隧道補強。",
        "祝山線每日清晨加開觀日出列車，假日班次經常客滿。",
        "鐵道迷特別喜愛獨立山螺旋線與之字形折返路段。",
        "地方業者期待通車能帶動山區民宿與茶園的觀光收入。",
        "車票可在網路上提前十四天預訂，現場也保留少量座位。",
        "冬季櫻花季期間，鐵路局將加開沼平線的區間列車。",
    ],
]

DOCX_HEADING = "花蓮縣觀光統計報告"
DOCX_PARAGRAPHS = [
    "花蓮縣政府公布去年觀光人次統計，太魯閣國家公園仍是最熱門的景點。",
    "縣府表示，今年將持續推動慢遊行程，並改善大眾運輸接駁服務。",
]
DOCX_TABLE = [["景點", "人次（萬）"], ["太魯閣國家公園", "四百二十"], ["七星潭", "一百八十"]]
DOCX_AFTER_TABLE = "報告最後指出，東部鐵路運能不足仍是觀光發展的主要瓶頸。"


def make_pdf(path: Path | None, pages: list[list[str]], font: str = "STSong-Light") -> bytes:
    """A PDF with one text block per page, in a built-in CJK CID font (no font file needed)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont(font))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, invariant=1)
    for lines in pages:
        pdf.setFont(font, 14)
        for number, line in enumerate(lines):
            pdf.drawString(72, 760 - 24 * number, line)
        pdf.showPage()
    pdf.save()
    data = buffer.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data


def make_scanned_pdf(path: Path) -> None:
    """Two pages that are only images (like a scan without OCR): no text layer at all."""
    from PIL import Image, ImageDraw
    from reportlab.pdfgen import canvas

    image = Image.new("L", (200, 120), 255)
    draw = ImageDraw.Draw(image)
    for y in range(10, 110, 12):
        draw.line((10, y, 190, y), fill=0, width=3)  # "lines of text", as pixels
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, invariant=1)
    for _ in range(2):
        pdf.drawInlineImage(image, 72, 500, width=400, height=240)
        pdf.showPage()
    pdf.save()
    path.write_bytes(buffer.getvalue())


def make_encrypted_pdf(path: Path, source: bytes, user_password: str, algorithm: str) -> None:
    """An encrypted copy. An empty user password (only an owner password) opens without asking,
    like many official PDFs that only restrict printing or copying."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(source)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm=algorithm)
    buffer = io.BytesIO()
    writer.write(buffer)
    path.write_bytes(buffer.getvalue())


def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading(DOCX_HEADING, level=1)
    for paragraph in DOCX_PARAGRAPHS:
        document.add_paragraph(paragraph)
    table = document.add_table(rows=len(DOCX_TABLE), cols=len(DOCX_TABLE[0]))
    for row, values in zip(table.rows, DOCX_TABLE):
        for cell, value in zip(row.cells, values):
            cell.text = value
    document.add_paragraph(DOCX_AFTER_TABLE)
    document.core_properties.created = datetime(2025, 3, 1, tzinfo=UTC)  # stable between runs
    document.save(str(path))


def main() -> None:
    sample = make_pdf(HERE / "sample.pdf", PDF_PAGES)
    make_pdf(HERE / "single-page.pdf", PDF_PAGES[:1], font="MSung-Light")
    make_encrypted_pdf(HERE / "password.pdf", sample, user_password="secret", algorithm="RC4-128")
    make_encrypted_pdf(HERE / "owner-only-aes.pdf", sample, user_password="", algorithm="AES-128")
    make_scanned_pdf(HERE / "scanned.pdf")
    (HERE / "broken.pdf").write_bytes(sample[: len(sample) // 3])
    make_docx(HERE / "sample.docx")


if __name__ == "__main__":
    main()
