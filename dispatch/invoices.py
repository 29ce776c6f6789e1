"""The PDFs of a completed job's money (reportlab): its invoice (number, parties, items, total, commission, payment,
dates, refunds) and each credit note (a refund: what, why, against which invoice)."""
from io import BytesIO
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from dispatch.models import CreditNote, Invoice, PaymentMethod

DATE = "%Y-%m-%d %H:%M UTC"


def _document(title: str) -> tuple[BytesIO, SimpleDocTemplate]:
    """An A4 document with the house margins, and the buffer it renders into."""
    buffer = BytesIO()
    margin = 18 * mm
    doc = SimpleDocTemplate(buffer, pagesize=A4, title=title, author="Dispatch",
                            leftMargin=margin, rightMargin=margin, topMargin=margin, bottomMargin=margin)
    return buffer, doc


def invoice_filename(invoice: Invoice) -> str:
    return f"{invoice.number}.pdf"


def invoice_pdf(invoice: Invoice) -> bytes:
    """Render the invoice; its figures are the ones frozen when the job completed."""
    job = invoice.job
    styles = getSampleStyleSheet()
    buffer, doc = _document(f"Invoice {invoice.number}")
    paid = "paid from the customer's wallet" if invoice.payment_method == PaymentMethod.WALLET else "paid in cash"
    facts = [
        ["Invoice number", invoice.number],
        ["Issued", f"{invoice.issued_at:{DATE}}"],
        ["Job", f"#{job.pk} - {job.category.name}"],
        ["Booked", f"{job.created_at:{DATE}}"],
        ["Scheduled", f"{job.scheduled_at:{DATE}}" if job.scheduled_at else "as soon as possible"],
        ["Completed", f"{invoice.issued_at:{DATE}}"],
        ["Customer", job.customer.display_name],
        ["Provider", job.provider.display_name],
        ["Address", job.address],
        ["Payment method", f"{invoice.payment_method} ({paid})"],
    ]
    items = [["Item", "Amount"]]
    items += [[line.item.name, f"{line.price:.2f}"] for line in job.job_items.select_related("item")]
    total_row = len(items)
    items += [
        ["Total", f"{invoice.total:.2f}"],
        ["Platform commission (included)", f"{invoice.commission:.2f}"],
        ["Provider receives", f"{invoice.total - invoice.commission:.2f}"],
    ]
    notes = list(job.credit_notes.all())
    for note in notes:
        items.append([f"Refunded: credit note {note.number} ({note.issued_at:%Y-%m-%d})", f"-{note.amount:.2f}"])
    if notes:
        items.append(["Total after refunds", f"{invoice.total - sum(n.amount for n in notes):.2f}"])
    items_table = Table(items, colWidths=[120 * mm, 50 * mm])
    items_table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("FONTNAME", (0, total_row), (-1, total_row), "Helvetica-Bold"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("LINEABOVE", (0, total_row), (-1, total_row), 0.5, colors.black),
        ("ALIGN", (1, 0), (1, -1), "RIGHT"),
    ]))
    facts_table = Table(facts, colWidths=[40 * mm, 130 * mm])
    facts_table.setStyle(TableStyle([("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold"), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    doc.build([
        Paragraph(escape(f"Invoice {invoice.number}"), styles["Title"]),
        facts_table,
        Spacer(1, 8 * mm),
        items_table,
    ])
    return buffer.getvalue()


def credit_note_filename(note: CreditNote) -> str:
    return f"{note.number}.pdf"


def credit_note_pdf(note: CreditNote, invoice: Invoice) -> bytes:
    """Render a refund: the credit note's number and date, the invoice it corrects, the amount and why."""
    job = note.job
    styles = getSampleStyleSheet()
    buffer, doc = _document(f"Credit note {note.number}")
    facts = [
        ["Credit note", note.number],
        ["Issued", f"{note.issued_at:{DATE}}"],
        ["Against invoice", f"{invoice.number} of {invoice.issued_at:{DATE}} (total {invoice.total:.2f})"],
        ["Job", f"#{job.pk} - {job.category.name}"],
        ["Customer", job.customer.display_name],
        ["Provider", job.provider.display_name],
        ["Reason", Paragraph(escape(note.reason), styles["BodyText"])],
        ["Refunded", f"{note.amount:.2f}, to the customer's wallet"],
        ["Commission given back", f"{note.commission:.2f}, by the platform to the provider"],
    ]
    table = Table(facts, colWidths=[45 * mm, 125 * mm])
    table.setStyle(TableStyle([("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold"), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    doc.build([Paragraph(escape(f"Credit note {note.number}"), styles["Title"]), table])
    return buffer.getvalue()
